package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
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
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hl7send test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+".key", "EC PRIVATE KEY", keyDER)
	}
	p.serverCert, p.serverKey = issue("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = issue("client", 3, x509.ExtKeyUsageClientAuth)
	if p.serverPair, err = tls.LoadX509KeyPair(p.serverCert, p.serverKey); err != nil {
		t.Fatal(err)
	}
	return p
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
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
