package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The demo PKI: a CA, the demo gateway's server certificate and the demo
// consumer's client certificate, committed under testdata/demo/pki so that
// the demo needs nothing but Go. `fsb demo pki -out DIR` writes them
// (testdata/demo/pki/README.md). The CA's private key is thrown away once
// the two leaves are signed: nobody can issue another certificate under the
// demo CA, so the public demo keys are the only thing it vouches for.
const (
	demoPKIDir         = "testdata/demo/pki"
	demoCAFile         = "ca.pem"
	demoServerCertFile = "server.pem"
	demoServerKeyFile  = "server-key.pem"
	demoClientCertFile = "consumer.pem"
	demoClientKeyFile  = "consumer-key.pem"
	demoPKIYears       = 20
)

// oidOrganizationIdentifier is X.520 organizationIdentifier (2.5.4.97):
// eIDAS writes a Belgian organisation as NTRBE-<enterprise number>.
var oidOrganizationIdentifier = asn1.ObjectIdentifier{2, 5, 4, 97}

func cmdDemoPKI(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo pki", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", demoPKIDir, "directory to write the demo PKI into (existing files are replaced)")
	years := fs.Int("years", demoPKIYears, "validity of the certificates in years")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fsb demo pki [-out DIR] [-years N]\n\nWrites a new demo CA, the demo gateway's server certificate (127.0.0.1, ::1,\nlocalhost) and the demo consumer's client certificate with their keys.\nDEMO ONLY: the keys are committed to a public repository.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || *years < 1 || *years > 30 {
		fs.Usage()
		return 2
	}
	now := time.Now().UTC().Truncate(time.Second)
	notAfter := now.AddDate(*years, 0, 0)
	if err := writeDemoPKI(*out, now, notAfter); err != nil {
		fmt.Fprintln(stderr, "fsb demo pki:", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s, %s, %s, %s and %s to %s, valid until %s (the CA key was not kept)\n",
		demoCAFile, demoServerCertFile, demoServerKeyFile, demoClientCertFile, demoClientKeyFile, *out, notAfter.Format(time.DateOnly))
	return 0
}

// writeDemoPKI generates the demo CA and both leaves, valid from an hour
// before now (clock skew) until notAfter.
func writeDemoPKI(dir string, now, notAfter time.Time) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		return n.Add(n, big.NewInt(1))
	}
	notBefore := now.Add(-time.Hour)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Country: []string{"BE"}, Organization: []string{"OpenFSB demo"}, CommonName: "OpenFSB demo CA - DEMO ONLY, DO NOT TRUST"},
		NotBefore:    notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	type leaf struct {
		cert, key string
		tmpl      *x509.Certificate
	}
	leaves := []leaf{
		{demoServerCertFile, demoServerKeyFile, &x509.Certificate{
			Subject:     pkix.Name{Country: []string{"BE"}, Organization: []string{"OpenFSB demo"}, CommonName: "OpenFSB demo gateway"},
			DNSNames:    []string{"localhost"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}},
		{demoClientCertFile, demoClientKeyFile, &x509.Certificate{
			Subject: pkix.Name{Country: []string{"BE"}, Organization: []string{demoOrgName}, CommonName: demoAppName,
				ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidOrganizationIdentifier, Value: "NTRBE-" + demoOrg}}},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}},
	}
	type file struct {
		name string
		data []byte
		mode os.FileMode
	}
	files := []file{{demoCAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644}}
	for _, l := range leaves {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		l.tmpl.SerialNumber, l.tmpl.NotBefore, l.tmpl.NotAfter = serial(), notBefore, notAfter
		l.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, l.tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		files = append(files, file{l.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644},
			file{l.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600})
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// checkDemoPKI loads the demo PKI from dir and checks that both leaves
// chain to the CA for their use and are valid at now, so that an expired
// or mismatched set fails the demo's start with the command that renews it
// rather than with a refusal on the first call.
func checkDemoPKI(dir string, now time.Time) (notAfter time.Time, err error) {
	renew := fmt.Sprintf("regenerate them with: go run ./cmd/fsb demo pki -out %s", dir)
	pool, err := loadCertPool(filepath.Join(dir, demoCAFile))
	if err != nil {
		return time.Time{}, fmt.Errorf("demo PKI: %w (%s)", err, renew)
	}
	for _, l := range []struct {
		cert, key string
		usage     x509.ExtKeyUsage
	}{{demoServerCertFile, demoServerKeyFile, x509.ExtKeyUsageServerAuth}, {demoClientCertFile, demoClientKeyFile, x509.ExtKeyUsageClientAuth}} {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, l.cert), filepath.Join(dir, l.key))
		if err != nil {
			return time.Time{}, fmt.Errorf("demo PKI: %w (%s)", err, renew)
		}
		leaf := pair.Leaf
		if leaf == nil {
			return time.Time{}, errors.New("demo PKI: no leaf certificate")
		}
		if now.After(leaf.NotAfter) {
			return time.Time{}, fmt.Errorf("demo PKI: %s expired on %s: %s", l.cert, leaf.NotAfter.Format(time.DateOnly), renew)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{l.usage}}); err != nil {
			return time.Time{}, fmt.Errorf("demo PKI: %s: %w (%s)", l.cert, err, renew)
		}
		if notAfter.IsZero() || leaf.NotAfter.Before(notAfter) {
			notAfter = leaf.NotAfter
		}
	}
	return notAfter, nil
}
