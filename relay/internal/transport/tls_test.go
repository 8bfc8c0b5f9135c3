package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/mllpd/mllpd/internal/testpki"
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
	ca := testpki.New(t, "test-ca")
	p := &testPKI{pool: ca.Pool(), caFile: ca.CertFile}
	srvCert, srvKey := ca.Issue("server")
	server, err := tls.LoadX509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	p.server = server
	p.certFile, p.keyFile = ca.Issue("client")
	p.dirPath = filepath.Dir(p.certFile)
	p.otherCert, p.otherKey = testpki.New(t, "other-ca").Issue("intruder")
	return p
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
	bad := filepath.Join(pki.dirPath, "empty.pem") // a PEM block that is no certificate
	if err := os.WriteFile(bad, []byte("-----BEGIN NOTHING-----\n-----END NOTHING-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
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
