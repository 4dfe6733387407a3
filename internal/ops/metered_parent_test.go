package ops

import (
	"context"
	"testing"

	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/replay"
	"github.com/jirabridge/jirabridge/internal/wire"
)

type plainApplier struct{}

func (plainApplier) Apply(context.Context, wire.Change) error { return nil }

type parentApplier struct{ plainApplier }

func (parentApplier) ParentReady(context.Context, wire.Change) (bool, error) { return true, nil }

// Replay wakes waiting sub-tasks only through replay.ParentChecker, so the
// metering wrapper must keep it exactly when the wrapped applier has it.
func TestMeterApplierKeepsParentChecker(t *testing.T) {
	m := metrics.New(nil)
	if _, ok := MeterApplier(parentApplier{}, m).(replay.ParentChecker); !ok {
		t.Error("wrapper of a ParentChecker lost it")
	}
	if _, ok := MeterApplier(plainApplier{}, m).(replay.ParentChecker); ok {
		t.Error("wrapper of a plain applier claims to check parents")
	}
	ok, err := MeterApplier(parentApplier{}, m).(replay.ParentChecker).ParentReady(context.Background(), wire.Change{})
	if !ok || err != nil {
		t.Errorf("ParentReady = %v, %v; want the wrapped answer", ok, err)
	}
}
