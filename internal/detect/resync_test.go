package detect

import "testing"

func TestIsResyncChange(t *testing.T) {
	t.Parallel()
	d := &Detector{o: Options{SyncID: "partner", Node: "n1a2"}}
	tests := []struct {
		id   string
		want bool
	}{
		{d.ChangeID(ResyncItem("1700000000000", "m10010")), true},
		{d.ChangeID(ResyncItem("1700000000000", "a7/d")), true},
		{d.ChangeID(ResyncItem("1", "a7/n")), true},
		{d.ChangeID("m10010"), false},
		{d.ChangeID("m10010/e1700000000000"), false},
		{d.ChangeID("r10010/1700000000000"), false}, // the resync snapshot
		{d.ChangeID("c10010"), false},
		{d.ChangeID("rc"), false},
		{d.ChangeID("rcx/m1"), false},
		{"rc1/m1", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := IsResyncChange(tc.id); got != tc.want {
			t.Errorf("IsResyncChange(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}
