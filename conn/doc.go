// Package conn is the connection side of RingMachine: the Handler interface
// a program implements for each connection (EventMachine's EM::Connection
// callbacks), Base with no-op defaults, the Conn a handler acts on
// (SendData, Close, Pause, timeouts, ...), and the errors connections
// report.
//
// conn does not import the event loop: the loop implements [Driver] for
// each connection it owns.
//
//	type echo struct{ conn.Base }
//
//	func (echo) ReceiveData(c *conn.Conn, data []byte) {
//		c.SendData(data) // copies: data is only valid during the call
//	}
//
//	srv, err := l.StartServer("127.0.0.1:10000", func() conn.Handler { return echo{} })
package conn
