package relay

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mllpd/mllpd/hl7"
	"github.com/mllpd/mllpd/internal/testpki"
	"github.com/mllpd/mllpd/mllp"
	"github.com/mllpd/mllpd/store"
)

// TestMutualTLSListener: a client with a certificate from the configured CA
// gets AA and is recorded by its CN; one without a certificate, or speaking
// plain TCP, gets nothing stored. A reload re-reads a replaced certificate.
func TestMutualTLSListener(t *testing.T) {
	ca := testpki.New(t, "hospital")
	serverCert, serverKey := ca.Issue("mllpd")
	clientCert, clientKey := ca.Issue("lab-analyser-7")
	td := startDaemon(t, `listeners:
  - name: secure
    listen: {{listen}}
    tls: {cert_file: "`+serverCert+`", key_file: "`+serverKey+`", client_ca_file: "`+ca.CertFile+`"}
`)
	addr := td.addr(t, "secure")
	send := func(cfg *tls.Config, id string) ([]byte, error) {
		c := &mllp.Client{Addr: addr, TLSConfig: cfg, AckTimeout: 5 * time.Second, DialTimeout: 5 * time.Second}
		defer c.Close()
		return c.Send(context.Background(), []byte(strings.Replace(m1, "CTL0001", id, 1)))
	}
	reply, err := send(ca.ClientConfig(clientCert, clientKey), "TLS1")
	if err != nil || !strings.Contains(string(reply), "MSA|AA|TLS1") {
		t.Fatalf("mTLS client: reply %q, err %v", reply, err)
	}
	recs, err := td.Store().Query(store.Filter{ControlID: "TLS1", Limit: 1})
	if err != nil || len(recs) != 1 || !strings.HasSuffix(recs[0].Peer, "CN=lab-analyser-7") {
		t.Fatalf("stored peer = %+v (err %v), want the client certificate's CN", recs, err)
	}
	if _, err := send(ca.ClientConfig("", ""), "TLS2"); err == nil {
		t.Errorf("a client without a certificate was answered")
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("\x0b" + strings.Replace(m1, "CTL0001", "TLS3", 1) + "\x1c\r"))
	buf := make([]byte, 4096)
	n, _ := c.Read(buf)
	if strings.Contains(string(buf[:n]), "MSA|AA") {
		t.Errorf("plain TCP on a TLS listener got an AA")
	}
	c.Close()
	for _, id := range []string{"TLS2", "TLS3"} {
		if recs, _ := td.Store().Query(store.Filter{ControlID: id, Limit: 1}); len(recs) != 0 {
			t.Errorf("%s was stored", id)
		}
	}

	// Replace the certificate files with ones from another CA and reload.
	ca2 := testpki.New(t, "hospital-2026")
	cert2, key2 := ca2.Issue("mllpd")
	for src, dst := range map[string]string{cert2: serverCert, key2: serverKey} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := td.Reload(context.Background(), td.Config()); err != nil {
		t.Fatal(err)
	}
	cfg2 := ca2.ClientConfig(clientCert, clientKey) // trusts the new server CA, presents the old client cert
	if reply, err := send(cfg2, "TLS4"); err != nil || !strings.Contains(string(reply), "MSA|AA|TLS4") {
		t.Fatalf("after the certificate swap: reply %q, err %v", reply, err)
	}
}

// TestTLSDestination delivers to a downstream that requires mutual TLS.
func TestTLSDestination(t *testing.T) {
	ca := testpki.New(t, "downstream")
	srvCert, srvKey := ca.Issue("epr")
	cliCert, cliKey := ca.Issue("mllpd")
	tlsCfg, _, err := mllp.NewServerTLSConfig(srvCert, srvKey, ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	srv := &mllp.Server{TLSConfig: tlsCfg, Handler: mllp.HandlerFunc(func(ctx context.Context, req *mllp.Request) ([]byte, error) {
		m, err := hl7.Parse(req.Frame)
		if err != nil {
			return nil, err
		}
		got <- req.PeerName + " " + m.Header().ControlID
		return hl7.NewACK(m, hl7.AA, hl7.AckOptions{Now: time.Now(), ControlID: "D1"}), nil
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	td := startDaemon(t, oneListener+`destinations:
  - name: epr
    type: mllp
    address: "`+ln.Addr().String()+`"
    tls: {ca_file: "`+ca.CertFile+`", cert_file: "`+cliCert+`", key_file: "`+cliKey+`"}
routes:
  - {name: all, to: [{destination: epr}]}
`)
	c := dial(t, td.addr(t, "pas"))
	if r := c.roundTrip(m1); segField(r, "MSA", 1) != "AA" {
		t.Fatalf("reply %q", r)
	}
	select {
	case s := <-got:
		if s != "mllpd CTL0001" {
			t.Errorf("downstream saw %q, want the client CN and CTL0001", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("nothing delivered over mutual TLS")
	}
}
