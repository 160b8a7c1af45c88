package conn

import (
	"crypto/tls"
	"errors"
	"time"
)

// DefaultTLSHandshakeTimeout bounds a TLS handshake started with StartTLS
// (as net/http's Transport does); a peer that stalls longer is closed with
// Unbind(ErrTLSHandshakeTimeout). loop.Options.TLSHandshakeTimeout changes
// it.
const DefaultTLSHandshakeTimeout = 10 * time.Second

// ErrTLSHandshakeTimeout is the Unbind reason of a connection whose TLS
// handshake did not finish in time. It also matches syscall.ETIMEDOUT.
var ErrTLSHandshakeTimeout error = &timeoutError{"conn: TLS handshake timeout"}

// TLSHandshaker may be implemented by a Handler to learn when the TLS
// handshake that StartTLS began has completed (EventMachine's
// ssl_handshake_completed); TLSConnectionState is then available. A
// handshake that fails ends the connection: Unbind gets an *OpError of Op
// "tls handshake" wrapping crypto/tls's error.
type TLSHandshaker interface {
	HandshakeCompleted(c *Conn)
}

// StartTLS switches the connection to TLS with crypto/tls (EventMachine's
// start_tls), as a server on an accepted connection and as a client on one
// made by Connect. It may be called at any point of the stream: at once
// (from PostInit, even before a client is connected), or after a plaintext
// exchange, as STARTTLS in SMTP, IMAP or Postgres (the peer must wait for
// the upgrade, as those protocols require: bytes it sent before are
// delivered as plaintext).
//
// From then on ReceiveData gets plaintext and SendData takes plaintext;
// data sent before the handshake completes is queued and encrypted after
// it. CloseAfterWriting sends a close_notify alert after the queued data.
// Pause, Resume, timeouts, outbound limits (which count the encrypted
// bytes) and a graceful Stop keep their meaning.
//
// Verification is crypto/tls's: a client checks the server's chain and
// host name unless cfg says otherwise (InsecureSkipVerify, or
// VerifyConnection / VerifyPeerCertificate for a hook of one's own:
// EventMachine's ssl_verify_peer). A client's cfg without ServerName gets
// the host Connect was given. cfg is not modified; do not modify it after
// the call. The handshake runs on a goroutine of its own (crypto/tls
// blocks), never on the loop; it is bounded by
// DefaultTLSHandshakeTimeout.
//
// It returns an error for a nil cfg, a server side whose cfg has no
// certificate (Certificates, GetCertificate or GetConfigForClient),
// ErrNotStream on a datagram socket, ErrClosed once the connection is
// closing, and an error when TLS was started already.
func (c *Conn) StartTLS(cfg *tls.Config) error {
	if cfg == nil {
		return errors.New("conn: StartTLS with a nil *tls.Config")
	}
	return c.d.StartTLS(cfg)
}

// TLSConnectionState returns the state of the connection's TLS session
// (EventMachine's get_peer_cert, get_cipher_name, get_cipher_protocol,
// get_sni_hostname: PeerCertificates, CipherSuite, Version,
// NegotiatedProtocol, ServerName) and true once the handshake has
// completed; false before, and for a connection without TLS.
func (c *Conn) TLSConnectionState() (tls.ConnectionState, bool) { return c.d.TLSState() }
