// Package enginetest is the conformance table of RingMachine's two I/O
// engines, one level below the loop: the epoll engine (package epoll in
// fallback_epoll, *epoll.Poller) and the io_uring engine (package engine in
// uring/engine, *engine.Engine). Both promise one completion-style contract
// (a submit method queues an operation under a caller's token, Wait reports
// io_uring-shaped completions, every operation ends with exactly one final
// completion, the one without FlagMore), and the loop treats them alike. A
// difference between them should fail here, next to the engine that makes
// it, rather than as a symptom in a loop or example test.
//
// The package has tests only. Each behaviour is one test function that runs
// a subtest per row of the engines table (table_linux_test.go): each engine
// with its defaults ("epoll", "uring") and tuned so that its rare paths run
// on every call ("epoll-tiny", "uring-tiny": tiny receive buffers, and for
// io_uring poll-first receives, zero-copy sends and one enter per
// operation), and io_uring's two again with a table of direct descriptors
// ("uring-direct", "uring-direct-tiny"), whose accepts put connections in
// the ring's file table instead of the process's. The tests see the engines
// through a small interface (eng) and thin wrappers; Wait is normalised to
// one completion struct.
//
// Stream tests take their connections through the engine's accept
// (enginePair), so on the direct rows the engine's side of every stream is
// a direct descriptor, which no system call can name: a test makes system
// calls on the client side only, and reaches the accepted side through the
// engine (Shutdown, Addrs and SetSockOptInt are in the interface, made with
// plain system calls by the epoll wrapper).
//
// Rules the tests keep:
//
//   - Every subtest runs on its own goroutine, locked to its OS thread from
//     before the engine is opened until after it is closed: the io_uring
//     engine's ring is SINGLE_ISSUER. Only Wake is called from other
//     goroutines; the io_uring wrapper panics on any other call from the
//     wrong thread.
//   - Checks compare every byte received (streams are seeded patterns, so a
//     byte from the wrong connection or offset is caught), not lengths.
//   - Every wait has a deadline, and a Wait that nothing else bounds runs
//     under a watchdog that makes it return: a test fails, it never hangs.
//     No test asserts an upper bound on time.
//   - Sockets live on 127.0.0.1 and ::1 only (::1 is skipped, with a log
//     line, where it cannot be bound).
//   - A leak check fails a subtest that leaves goroutines or descriptors
//     behind, and every operation must have had its final completion by
//     the end of the subtest.
//
// Behaviours only io_uring has (ConnectTimeout, UpdateConnectTimeout,
// MsgRing) run on its rows and skip the others, saying why; those of direct
// descriptors (direct_linux_test.go: no process fd taken, a full table,
// closes that fail, Addrs, socket commands, Shutdown, resets, splices) run
// on the direct rows only. Documented differences are checked or tolerated
// as each engine documents them: a Cancel of an unknown token is an error
// wrapping ENOENT on epoll and nil on io_uring; an io_uring multishot
// receive may end with -ENOBUFS, or with an -ECANCELED the caller did not
// ask for, both meaning "re-arm", and an io_uring send may end with
// -EAGAIN, meaning "submit it again".
//
// Run the table with
//
//	go test ./internal/enginetest/
//
// or, as the gate does, with the race detector and repetitions:
//
//	go test -race -count=3 ./internal/enginetest/
//
// One behaviour on one row: go test -run 'TestSplice/uring$' ./internal/enginetest/
package enginetest
