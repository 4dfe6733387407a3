package smtpsend

import (
	"context"
	"errors"
	"fmt"
	"strings"

	gomail "github.com/wneessen/go-mail"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/transport"
)

// Reasons Classify gives.
const (
	Reason4xx      = "smtp_4xx"      // the server deferred: back off and resend
	Reason5xx      = "smtp_5xx"      // the server refused the mail for good
	ReasonAuth     = "smtp_auth"     // user name, password or mechanism refused
	ReasonDial     = "smtp_dial"     // no connection, timeout, reset: try again
	ReasonTLS      = "smtp_tls"      // the certificate or TLS set-up is wrong
	ReasonCanceled = "smtp_canceled" // the caller's context ended
	ReasonOther    = "smtp_other"    // unknown: a person looks at it
)

// Classify says what the caller does after an SMTP error, as an errclass
// error that wraps err:
//
//   - a 4xx reply (go-mail SendError.IsTemp or a reply code) is BackOff
//     "smtp_4xx": the server asked us to come back later;
//   - 530, 534, 535 and 538 replies and a server without a usable AUTH
//     mechanism are Permanent "smtp_auth": fix the credentials;
//   - other 5xx replies are Permanent "smtp_5xx";
//   - certificate errors and TLS set-up failures are Permanent "smtp_tls",
//     with a message that names the CA file setting;
//   - dial errors, timeouts, resets and lost connections are Temporary
//     "smtp_dial" (they are not SendErrors, so IsTemp alone misses them);
//   - a cancelled context is Temporary "smtp_canceled";
//   - anything else is Permanent "smtp_other", so a person looks at it.
//
// An error that is already classified is returned unchanged; nil stays nil.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var ce *errclass.Error
	if errors.As(err, &ce) {
		return err
	}
	if code, ok := replyCode(err); ok {
		switch {
		case code == 530 || code == 534 || code == 535 || code == 538:
			return errclass.New(errclass.Permanent, ReasonAuth, fmt.Errorf("%w; check the smtp user name, password and auth mechanism", err))
		case code >= 500:
			return errclass.New(errclass.Permanent, Reason5xx, err)
		case code >= 400:
			return errclass.WithBackOff(Reason4xx, 0, err)
		}
	}
	var se *gomail.SendError
	if errors.As(err, &se) {
		switch {
		case se.IsTemp():
			return errclass.WithBackOff(Reason4xx, 0, err)
		case se.Reason == gomail.ErrConnCheck:
			return errclass.New(errclass.Temporary, ReasonDial, err)
		}
	}
	if transport.IsTLSError(err) {
		return errclass.New(errclass.Permanent, ReasonTLS, fmt.Errorf("%w; the smtp server's certificate is not trusted or TLS failed: set %s to the PEM file of the CA that signed it, and check the TLS mode matches the port", err, CAFileVar))
	}
	for _, authErr := range []error{
		gomail.ErrPlainAuthNotSupported, gomail.ErrLoginAuthNotSupported, gomail.ErrCramMD5AuthNotSupported,
		gomail.ErrXOauth2AuthNotSupported, gomail.ErrNoSupportedAuthDiscovered,
	} {
		if errors.Is(err, authErr) {
			return errclass.New(errclass.Permanent, ReasonAuth, fmt.Errorf("%w; choose an auth mechanism the server offers", err))
		}
	}
	if strings.Contains(err.Error(), "does not support SMTP AUTH") {
		return errclass.New(errclass.Permanent, ReasonAuth, fmt.Errorf("%w; the server offers no AUTH here: leave the user name empty or use a TLS port", err))
	}
	if strings.Contains(err.Error(), "does not support STARTTLS") {
		return errclass.New(errclass.Permanent, ReasonTLS, fmt.Errorf("%w; use the implicit TLS port, or a server that offers STARTTLS", err))
	}
	if errors.Is(err, context.Canceled) {
		return errclass.New(errclass.Temporary, ReasonCanceled, err)
	}
	if transport.IsConnectionLost(err) || errors.Is(err, gomail.ErrNoActiveConnection) {
		return errclass.New(errclass.Temporary, ReasonDial, err)
	}
	return errclass.New(errclass.Permanent, ReasonOther, err)
}
