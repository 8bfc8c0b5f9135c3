package transport

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
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/mllpd/mllpd/mllp"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	pool                         *x509.CertPool
	server                       tls.Certificate
	caFile, certFile, keyFile    string // client side
	otherCert, otherKey, dirPath string // a client cert of another CA
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{pool: x509.NewCertPool(), dirPath: dir}
	caKey, caCert, caDER := makeCA(t, "test CA")
	p.pool.AddCert(caCert)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	srvKey, srvDER := makeLeaf(t, caCert, caKey, "server", x509.ExtKeyUsageServerAuth)
	p.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}

	cliKey, cliDER := makeLeaf(t, caCert, caKey, "client", x509.ExtKeyUsageClientAuth)
	p.certFile = writePEM(t, dir, "client.pem", "CERTIFICATE", cliDER)
	p.keyFile = writePEM(t, dir, "client-key.pem", "PRIVATE KEY", mustPKCS8(t, cliKey))

	otherCAKey, otherCA, _ := makeCA(t, "other CA")
	oKey, oDER := makeLeaf(t, otherCA, otherCAKey, "intruder", x509.ExtKeyUsageClientAuth)
	p.otherCert = writePEM(t, dir, "other.pem", "CERTIFICATE", oDER)
	p.otherKey = writePEM(t, dir, "other-key.pem", "PRIVATE KEY", mustPKCS8(t, oKey))
	return p
}

func makeCA(t *testing.T, cn string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}

func makeLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, usage x509.ExtKeyUsage) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func mustPKCS8(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const testMsg = "MSH|^~\\&|LAB|RXH|EPR|CITY|20240131||ADT^A01^ADT_A01|C1|P|2.5.1\rPID|1||7\r"

// TestMLLPMutualTLS: the transport verifies the server against ca_file and
// presents its client certificate; a client certificate of another CA is
// refused (a connection error, retriable).
func TestMLLPMutualTLS(t *testing.T) {
	pki := newPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mllp.Server{
		Logger:    zaptest.NewLogger(t),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientCAs: pki.pool, ClientAuth: tls.RequireAndVerifyClientCert},
		Handler: mllp.HandlerFunc(func(_ context.Context, req *mllp.Request) ([]byte, error) {
			if req.PeerName != "client" {
				return nil, mllp.ErrCloseConn
			}
			return []byte("MSH|^~\\&|EPR|CITY|LAB|RXH|20240131||ACK^A01^ACK|A1|P|2.5.1\rMSA|AA|C1\r"), nil
		}),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-served; !errors.Is(err, mllp.ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	})

	send := func(cert, key string) (Result, error) {
		cfg, err := ClientTLSConfig(pki.caFile, cert, key)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := NewMLLP(Config{Name: "epr", Address: ln.Addr().String(), TLS: cfg, AckTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		return tr.Send(context.Background(), Message{Seq: 1, ControlID: "C1", Body: []byte(testMsg)})
	}
	res, err := send(pki.certFile, pki.keyFile)
	if err != nil || res.AckCode != "AA" || res.AckControlID != "C1" {
		t.Errorf("mTLS send = %+v, %v", res, err)
	}
	if _, err := send(pki.otherCert, pki.otherKey); err == nil {
		t.Errorf("send with a client certificate of another CA succeeded")
	}
	if _, err := send("", ""); err == nil {
		t.Errorf("send without a client certificate succeeded")
	}
}

func TestHTTPSWithCA(t *testing.T) {
	pki := newPKI(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.server}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	cfg, err := ClientTLSConfig(pki.caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHTTP(Config{Name: "lab", URL: srv.URL, TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	res, err := h.Send(context.Background(), Message{Body: []byte(testMsg)})
	if err != nil || res.HTTPStatus != http.StatusAccepted {
		t.Errorf("https send = %+v, %v", res, err)
	}

	// Without the CA the server is not trusted.
	h2, err := NewHTTP(Config{Name: "lab", URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if _, err := h2.Send(context.Background(), Message{Body: []byte(testMsg)}); err == nil {
		t.Errorf("https send to an untrusted server succeeded")
	}
}

func TestClientTLSConfigErrors(t *testing.T) {
	pki := newPKI(t)
	bad := writePEM(t, pki.dirPath, "empty.pem", "NOTHING", nil)
	for _, c := range [][3]string{
		{filepath.Join(pki.dirPath, "missing.pem"), "", ""},
		{bad, "", ""},
		{pki.caFile, pki.certFile, ""},
		{pki.caFile, pki.certFile, pki.otherKey},
	} {
		if _, err := ClientTLSConfig(c[0], c[1], c[2]); err == nil {
			t.Errorf("ClientTLSConfig(%q) = nil error", c)
		}
	}
}
