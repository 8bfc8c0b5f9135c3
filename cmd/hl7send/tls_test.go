package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"path/filepath"
	"testing"

	"github.com/mllpd/mllpd/internal/testpki"
)

// testPKI is a CA with a server certificate (127.0.0.1, localhost) and a client
// certificate, written as PEM files.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	serverPair                                           tls.Certificate
	pool                                                 *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	ca := testpki.New(t, "hl7send-test")
	p := &testPKI{caFile: ca.CertFile, pool: ca.Pool()}
	p.serverCert, p.serverKey = ca.Issue("server")
	p.clientCert, p.clientKey = ca.Issue("client")
	var err error
	if p.serverPair, err = tls.LoadX509KeyPair(p.serverCert, p.serverKey); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	mtls := startServerTLS(t, ackWith("AA"), &tls.Config{
		MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pki.serverPair},
		ClientCAs: pki.pool, ClientAuth: tls.RequireAndVerifyClientCert,
	})
	plainTLS := startServerTLS(t, ackWith("AA"), &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pki.serverPair}})
	dir := writeFiles(t, map[string]string{"a.hl7": msgA})
	file := filepath.Join(dir, "a.hl7")
	tests := []struct {
		name string
		addr string
		args []string
		want int
	}{
		{"mTLS with client certificate", mtls.addr, []string{"--ca", pki.caFile, "--cert", pki.clientCert, "--key", pki.clientKey}, exitOK},
		{"mTLS without client certificate", mtls.addr, []string{"--ca", pki.caFile}, exitNoAck},
		{"TLS verified by --ca", plainTLS.addr, []string{"--tls", "--ca", pki.caFile}, exitOK},
		{"TLS, unknown CA", plainTLS.addr, []string{"--tls"}, exitNoAck},
		{"TLS, verification skipped", plainTLS.addr, []string{"--insecure-skip-verify"}, exitOK},
		{"TLS, wrong server name", plainTLS.addr, []string{"--ca", pki.caFile, "--server-name", "elsewhere.test"}, exitNoAck},
		{"plain TCP to a TLS listener", plainTLS.addr, []string{"--timeout", "300ms"}, exitNoAck},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := hl7send(t, "", append(append([]string{"--addr", tt.addr}, tt.args...), file)...)
			if r.code != tt.want {
				t.Errorf("exit %d, want %d:\n%v", r.code, tt.want, r)
			}
		})
	}
}

func TestListenTLS(t *testing.T) {
	pki := newTestPKI(t)
	addr, stop := startListen(t, io.Discard, "--tls", "--cert", pki.serverCert, "--key", pki.serverKey, "--ca", pki.caFile)
	dir := writeFiles(t, map[string]string{"a.hl7": msgA})
	if r := hl7send(t, "", "--addr", addr, "--ca", pki.caFile, "--cert", pki.clientCert, "--key", pki.clientKey, dir); r.code != exitOK {
		t.Errorf("mTLS to --listen: want exit 0, got:\n%v", r)
	}
	if r := hl7send(t, "", "--addr", addr, "--ca", pki.caFile, dir); r.code != exitNoAck {
		t.Errorf("no client certificate to --listen with --ca: want exit 2, got:\n%v", r)
	}
	if code := stop(); code != exitOK {
		t.Errorf("--listen exited %d", code)
	}
	if r := hl7send(t, "", "--listen", "127.0.0.1:0", "--tls"); r.code != exitUsage {
		t.Errorf("--listen --tls without a certificate: want exit 3, got:\n%v", r)
	}
}
