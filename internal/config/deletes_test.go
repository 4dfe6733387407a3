package config

import (
	"strings"
	"testing"
)

func TestSyncDeletesSwitch(t *testing.T) {
	t.Parallel()
	head := "name: s\nproject: SUP\nissue_types: {Bug: bug}\n"
	for _, tc := range []struct {
		name, extra string
		want        DeleteMode
		problem     string
	}{
		{"default keeps", "", DeletesKeep, ""},
		{"keep", "deletes: keep\n", DeletesKeep, ""},
		{"propagate", "deletes: propagate\n", DeletesPropagate, ""},
		{"typo", "deletes: remove\n", "", `line 4: deletes: "remove" is not one of keep, propagate`},
		{"not a word", "deletes: {a: b}\n", "", "line 4: deletes: want a single value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			def, err := ParseSync([]byte(head + tc.extra))
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("error %v, want one containing %q", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if def.Deletes != tc.want {
				t.Errorf("Deletes = %q, want %q", def.Deletes, tc.want)
			}
		})
	}
}
