package mllp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testPKI is a CA and certificates issued by it, generated per test.
type testPKI struct {
	t      *testing.T
	dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
	pool   *x509.CertPool
	serial int64
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mllpd test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{t: t, dir: t.TempDir(), caCert: ca, caKey: key, serial: 1, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caFile = filepath.Join(p.dir, "ca.pem")
	writePEM(t, p.caFile, "CERTIFICATE", der)
	return p
}

// issue returns a leaf certificate for cn (server and client usage, IP SAN
// 127.0.0.1), written to cn.pem and cn-key.pem.
func (p *testPKI) issue(cn string) (tls.Certificate, string, string) {
	t := p.t
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(p.dir, cn+".pem"), filepath.Join(p.dir, cn+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair, certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestServerTLS(t *testing.T) {
	pki := newTestPKI(t)
	_, certFile, keyFile := pki.issue("server")
	cfg, _, err := NewServerTLSConfig(certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	gotTLS := make(chan bool, 1)
	addr := startServer(t, &Server{TLSConfig: cfg, Handler: HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		gotTLS <- req.TLS != nil && req.TLS.HandshakeComplete && req.PeerName == ""
		return ackFor(req.Frame, "AA"), nil
	})})
	c := &Client{Addr: addr, TLSConfig: &tls.Config{RootCAs: pki.pool}}
	t.Cleanup(func() { c.Close() })
	reply, err := c.Send(context.Background(), msg("T1"))
	if err != nil {
		t.Fatalf("Send over TLS: %v", err)
	}
	if summary(reply) != "AA:T1" {
		t.Errorf("reply = %s", summary(reply))
	}
	if !<-gotTLS {
		t.Error("Request.TLS missing or PeerName set without a client certificate")
	}
}

func TestServerMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	_, certFile, keyFile := pki.issue("server")
	clientCert, _, _ := pki.issue("lab-analyser-7")
	other := newTestPKI(t) // a CA the server does not trust
	strangerCert, _, _ := other.issue("stranger")

	cfg, _, err := NewServerTLSConfig(certFile, keyFile, pki.caFile)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	peers := make(chan string, 1)
	addr := startServer(t, &Server{TLSConfig: cfg, OnEvent: rec.record, Handler: HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		peers <- req.PeerName
		return ackFor(req.Frame, "AA"), nil
	})})

	tests := []struct {
		name  string
		certs []tls.Certificate
		ok    bool
	}{
		{"no client certificate", nil, false},
		{"certificate from another CA", []tls.Certificate{strangerCert}, false},
		{"certificate from the trusted CA", []tls.Certificate{clientCert}, true},
	}
	failures := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{Addr: addr, AckTimeout: waitTimeout,
				TLSConfig: &tls.Config{RootCAs: pki.pool, Certificates: tt.certs}}
			defer c.Close()
			reply, err := c.Send(context.Background(), msg("MT1"))
			if !tt.ok {
				if err == nil {
					t.Fatalf("Send succeeded without a trusted client certificate: %s", summary(reply))
				}
				failures++
				rec.wait(t, TLSHandshakeFailed, failures)
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if got := <-peers; got != "lab-analyser-7" {
				t.Errorf("PeerName = %q, want lab-analyser-7", got)
			}
		})
	}
}

// TestCertReload: a reloaded certificate is served to new connections
// without a restart; a failed reload keeps the old one.
func TestCertReload(t *testing.T) {
	pki := newTestPKI(t)
	first, certFile, keyFile := pki.issue("server")
	cfg, reload, err := NewServerTLSConfig(certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, &Server{TLSConfig: cfg, Handler: ackHandler})

	served := func() *big.Int {
		t.Helper()
		d := tls.Dialer{Config: &tls.Config{RootCAs: pki.pool}}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber
	}
	if got, want := served(), first.Leaf.SerialNumber; got.Cmp(want) != 0 {
		t.Fatalf("serial = %v, want %v", got, want)
	}

	// Renewal: new files at the same paths, then reload (SIGHUP).
	second, certFile2, keyFile2 := pki.issue("server-renewed")
	for _, f := range [][2]string{{certFile2, certFile}, {keyFile2, keyFile}} {
		if err := os.Rename(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if got, want := served(), second.Leaf.SerialNumber; got.Cmp(want) != 0 {
		t.Errorf("after reload serial = %v, want %v", got, want)
	}

	// A broken file is refused and the current certificate stays.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := reload(); err == nil {
		t.Error("reload of a broken certificate succeeded")
	}
	if got, want := served(), second.Leaf.SerialNumber; got.Cmp(want) != 0 {
		t.Errorf("after failed reload serial = %v, want %v", got, want)
	}
}

func TestNewServerTLSConfigErrors(t *testing.T) {
	pki := newTestPKI(t)
	_, certFile, keyFile := pki.issue("server")
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, cert, key, ca string }{
		{"missing cert", filepath.Join(pki.dir, "nope.pem"), keyFile, ""},
		{"key does not match", certFile, filepath.Join(pki.dir, "nope-key.pem"), ""},
		{"missing CA file", certFile, keyFile, filepath.Join(pki.dir, "nope-ca.pem")},
		{"CA file without certificates", certFile, keyFile, empty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := NewServerTLSConfig(tt.cert, tt.key, tt.ca); err == nil {
				t.Error("NewServerTLSConfig succeeded")
			}
		})
	}
}

// TestServerTLSHandshakeTimeout: a peer that connects and sends nothing does
// not hold a TLS connection beyond ReadTimeout.
func TestServerTLSHandshakeTimeout(t *testing.T) {
	pki := newTestPKI(t)
	_, certFile, keyFile := pki.issue("server")
	cfg, _, err := NewServerTLSConfig(certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	addr := startServer(t, &Server{TLSConfig: cfg, ReadTimeout: 100 * time.Millisecond, Handler: ackHandler, OnEvent: rec.record})
	c := dial(t, addr, "")
	e := rec.wait(t, TLSHandshakeFailed, 1)
	if !errors.Is(e.Err, os.ErrDeadlineExceeded) {
		t.Errorf("handshake error = %v, want a deadline error", e.Err)
	}
	if got := replies(t, c); len(got) != 0 {
		t.Errorf("replies = %v", got)
	}
}
