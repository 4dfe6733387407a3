package imappoll_test

import (
	"testing"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/transport/imappoll"
	"github.com/jirabridge/jirabridge/transport/mailstack"
	"github.com/jirabridge/jirabridge/transport/smtpsend"
	"github.com/jirabridge/jirabridge/transport/transporttest"
)

func isRetryable(err error) bool { return errclass.IsRetryable(err) }

func TestSuiteMailtest(t *testing.T) {
	t.Parallel()
	transporttest.Run(t, func(t *testing.T) transporttest.Harness { return mailtestHarness(t) })
}

func TestSuiteStack(t *testing.T) {
	st := mailstack.Require(t)
	transporttest.Run(t, func(t *testing.T) transporttest.Harness {
		return stackHarness(t, st, smtpsend.TLSStartTLS, imappoll.TLSImplicit)
	})
}
