package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// PKI is a test certificate authority and certificates for 127.0.0.1, ::1
// and localhost: Leaf signed by the CA, Self self-signed (trusted by
// nobody), Expired signed by the CA but out of date. The PEM files are
// written on demand by Files.
type PKI struct {
	Pool            *x509.CertPool
	CA              *x509.Certificate
	Leaf            tls.Certificate
	Self            tls.Certificate
	Expired         tls.Certificate // signed by the CA, expired an hour ago
	caPEM           []byte
	leafPEM, keyPEM []byte
}

var (
	pkiOnce sync.Once
	pki     *PKI
	pkiErr  error
)

// TestPKI returns the test binary's PKI, made on first use.
func TestPKI(t testing.TB) *PKI {
	t.Helper()
	pkiOnce.Do(func() { pki, pkiErr = newPKI() })
	if pkiErr != nil {
		t.Fatalf("test PKI: %v", pkiErr)
	}
	return pki
}

func newCert(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func newPKI() (*PKI, error) {
	now := time.Now()
	ca, caKey, err := newCert(&x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "RingMachine test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leaf, leafKey, err := newCert(leafTmpl, ca, caKey)
	if err != nil {
		return nil, err
	}
	self, selfKey, err := newCert(leafTmpl, nil, nil)
	if err != nil {
		return nil, err
	}
	oldTmpl := *leafTmpl
	oldTmpl.SerialNumber = big.NewInt(3)
	oldTmpl.NotBefore, oldTmpl.NotAfter = now.Add(-48*time.Hour), now.Add(-time.Hour)
	expired, expiredKey, err := newCert(&oldTmpl, ca, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		return nil, err
	}
	p := &PKI{
		Pool:    x509.NewCertPool(),
		CA:      ca,
		Leaf:    tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: leafKey, Leaf: leaf},
		Self:    tls.Certificate{Certificate: [][]byte{self.Raw}, PrivateKey: selfKey, Leaf: self},
		Expired: tls.Certificate{Certificate: [][]byte{expired.Raw}, PrivateKey: expiredKey, Leaf: expired},
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
		leafPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	p.Pool.AddCert(ca)
	return p, nil
}

// Files writes the CA certificate, the leaf certificate and its key as PEM
// files in a temporary directory of t and returns their paths.
func (p *PKI) Files(t testing.TB) (ca, cert, key string) {
	t.Helper()
	dir := t.TempDir()
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for path, b := range map[string][]byte{ca: p.caPEM, cert: p.leafPEM, key: p.keyPEM} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ca, cert, key
}
