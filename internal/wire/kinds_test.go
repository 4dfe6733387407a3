package wire_test

import (
	"testing"

	"github.com/jirabridge/jirabridge/internal/wire"
	"github.com/jirabridge/jirabridge/transport"
)

// The envelope kinds are duplicated in package transport (which cannot be
// imported by wire); this keeps the two sets identical.
func TestKindsMatchTransport(t *testing.T) {
	t.Parallel()
	for _, tc := range [][2]string{
		{wire.KindChanges, transport.KindChanges},
		{wire.KindControl, transport.KindControl},
		{wire.KindConfig, transport.KindConfig},
		{wire.KindHandshake, transport.KindHandshake},
	} {
		if tc[0] != tc[1] {
			t.Errorf("wire kind %q != transport kind %q", tc[0], tc[1])
		}
	}
}
