package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writeCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTLSConfig(t *testing.T) {
	t.Parallel()
	ca := writeCA(t)
	s := SMTP{Host: "mail.example.org", Port: 587, CAFile: ca}
	cfg, err := s.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "mail.example.org" || cfg.RootCAs == nil || cfg.MinVersion != tls.VersionTLS12 || cfg.InsecureSkipVerify {
		t.Errorf("smtp tls: %+v", cfg)
	}
	if s.Addr() != "mail.example.org:587" || (IMAP{Host: "::1", Port: 993}).Addr() != "[::1]:993" {
		t.Errorf("addr: %s", s.Addr())
	}
	j := Jira{DangerouslySkipTLSVerify: true}
	if cfg, err := j.TLSConfig("jira"); err != nil || !cfg.InsecureSkipVerify || cfg.RootCAs != nil {
		t.Errorf("jira tls: %+v %v", cfg, err)
	}
	if _, err := (IMAP{CAFile: filepath.Join(t.TempDir(), "none")}).TLSConfig(); err == nil {
		t.Error("missing CA file accepted")
	}
	// A real CA passes Validate.
	c, err := Load(getenvFrom(with(validEnv(), "JIRABRIDGE_JIRA_CA_FILE", ca)))
	if err != nil || c.Jira.CAFile != ca {
		t.Errorf("Load with CA: %v", err)
	}
}
