package mllp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// A CertReloader serves a server certificate (and, for mutual TLS, a client
// CA pool) loaded from files, and reloads them on demand, so certificates
// can be renewed without a restart: the daemon calls Reload on SIGHUP.
// Connections already open keep the certificate they were handshaken with.
//
// Safe for concurrent use.
type CertReloader struct {
	certFile, keyFile, clientCAFile string
	cur                             atomic.Pointer[tls.Config]
}

// NewCertReloader loads the key pair and, if clientCAFile is not empty, the
// PEM CA bundle that client certificates must chain to (mutual TLS, as IHE
// ATNA secure nodes use). It fails if any file is unreadable or invalid.
func NewCertReloader(certFile, keyFile, clientCAFile string) (*CertReloader, error) {
	cr := &CertReloader{certFile: certFile, keyFile: keyFile, clientCAFile: clientCAFile}
	if err := cr.Reload(); err != nil {
		return nil, err
	}
	return cr, nil
}

// Reload reads the files again. On error the previously loaded pair stays in
// use and the error says which file failed.
func (cr *CertReloader) Reload() error {
	cert, err := tls.LoadX509KeyPair(cr.certFile, cr.keyFile)
	if err != nil {
		return fmt.Errorf("mllp: load TLS key pair %s, %s: %w", cr.certFile, cr.keyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if cr.clientCAFile != "" {
		pem, err := os.ReadFile(cr.clientCAFile)
		if err != nil {
			return fmt.Errorf("mllp: read client CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("mllp: client CA file %s: %w", cr.clientCAFile, errNoCerts)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	cr.cur.Store(cfg)
	return nil
}

var errNoCerts = errors.New("no PEM certificates found")

// TLSConfig returns a config for Server.TLSConfig whose GetConfigForClient
// serves the most recently loaded certificate and client CAs.
func (cr *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return cr.cur.Load(), nil
		},
	}
}

// NewServerTLSConfig is a shorthand for NewCertReloader followed by
// TLSConfig; reload is the reloader's Reload.
func NewServerTLSConfig(certFile, keyFile, clientCAFile string) (cfg *tls.Config, reload func() error, err error) {
	cr, err := NewCertReloader(certFile, keyFile, clientCAFile)
	if err != nil {
		return nil, nil, err
	}
	return cr.TLSConfig(), cr.Reload, nil
}
