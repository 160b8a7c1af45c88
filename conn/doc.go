// Package conn is the connection side of RingMachine: the Handler interface
// a program implements for each connection (EventMachine's EM::Connection
// callbacks), Base with no-op defaults, the Conn a handler acts on
// (SendData, Close, Pause, timeouts, ...), and the errors connections
// report. The event loop (package loop) makes every Conn: servers make one
// per accepted connection, Connect one per client; loop.Of(c) returns the
// loop a Conn belongs to.
//
//	type echo struct{ conn.Base }
//
//	func (echo) ReceiveData(c *conn.Conn, data []byte) {
//		c.SendData(data) // copies: data is only valid during the call
//	}
//
//	srv, err := l.StartServer("127.0.0.1:10000", func() conn.Handler { return echo{} })
//
// Optional interfaces add callbacks to a Handler: HalfCloser (the peer's
// EOF without closing), Drainer (the outbound queue fell to its low
// watermark), DatagramReceiver (datagrams with their sender),
// TLSHandshaker (the TLS handshake of StartTLS completed).
//
// Beyond sending and closing, a Conn switches to TLS (StartTLS), sets its
// socket options (SetNoDelay, SetKeepAlive, SetSockOpt, Control, ...), and
// reports when its queue drains (NotifyDrained). LineReader splits a stream
// into lines and sized binary blocks, as EventMachine's LineText2.
package conn
