package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strconv"
)

// tlsConfig builds the client TLS settings every connection of the bridge
// uses: TLS 1.2 or newer, the system roots plus caFile when given.
func tlsConfig(host, caFile string, skipVerify bool) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: skipVerify} // skipVerify only from JIRABRIDGE_JIRA_TLS_DANGEROUSLY_SKIP_VERIFY
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// TLSConfig returns the TLS settings for Jira's HTTPS connections, with
// JIRABRIDGE_JIRA_CA_FILE added to the system roots. host is the server
// name to verify (the base URL's host).
func (j Jira) TLSConfig(host string) (*tls.Config, error) {
	return tlsConfig(host, j.CAFile, j.DangerouslySkipTLSVerify)
}

// TLSConfig returns the TLS settings for the SMTP connection (implicit TLS
// or STARTTLS), with JIRABRIDGE_SMTP_CA_FILE added to the system roots.
func (s SMTP) TLSConfig() (*tls.Config, error) { return tlsConfig(s.Host, s.CAFile, false) }

// Addr returns host:port of the SMTP server.
func (s SMTP) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// TLSConfig returns the TLS settings for the IMAP connection, with
// JIRABRIDGE_IMAP_CA_FILE added to the system roots.
func (m IMAP) TLSConfig() (*tls.Config, error) { return tlsConfig(m.Host, m.CAFile, false) }

// Addr returns host:port of the IMAP server.
func (m IMAP) Addr() string { return net.JoinHostPort(m.Host, strconv.Itoa(m.Port)) }
