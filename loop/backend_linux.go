package loop

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
)

// openBackend opens the backend b asks for, applying RINGMACHINE_BACKEND to
// Auto. Auto tries io_uring and falls back to epoll when io_uring is absent
// (ENOSYS), forbidden (EPERM: sysctl io_uring_disabled or seccomp), short of
// locked memory (ENOMEM), or lacks a feature the loop needs (an error
// matching errors.ErrUnsupported); an explicit URing returns that error.
func openBackend(b Backend, cfg backendConfig) (backend, error) {
	want, err := requestedBackend(b)
	if err != nil {
		return nil, err
	}
	switch want {
	case Epoll:
		return openEpoll(cfg)
	case URing:
		return openURing(cfg)
	}
	be, err := openURing(cfg)
	if err == nil {
		return be, nil
	}
	if !fallbackWorthy(err) {
		return nil, err
	}
	be, err2 := openEpoll(cfg)
	if err2 != nil {
		return nil, errors.Join(err, err2)
	}
	return be, nil
}

// fallbackWorthy reports whether Auto may fall back to epoll after err.
func fallbackWorthy(err error) bool {
	return errors.Is(err, errors.ErrUnsupported) ||
		errors.Is(err, syscall.ENOSYS) ||
		errors.Is(err, syscall.EPERM) ||
		errors.Is(err, syscall.EACCES) ||
		errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.EINVAL)
}

func openURing(cfg backendConfig) (backend, error) {
	if h := testHookOpenURing; h != nil {
		return h()
	}
	be, err := newURingBackend(cfg)
	if err != nil {
		return nil, fmt.Errorf("loop: io_uring backend: %w", err)
	}
	return be, nil
}

func openEpoll(cfg backendConfig) (backend, error) {
	be, err := newEpollBackend(cfg)
	if err != nil {
		return nil, fmt.Errorf("loop: epoll backend: %w", err)
	}
	return be, nil
}

// URingAvailable reports whether the io_uring backend can be opened on this
// machine: nil, or the error naming what is missing (matching
// errors.ErrUnsupported for a missing kernel feature). It opens and closes a
// ring on a locked OS thread. Safe for concurrent use.
func URingAvailable() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Small buffers: this ring only proves that one can be opened.
	be, err := openURing(backendConfig{recvBufferSize: 4096, recvBuffers: 2})
	if err != nil {
		return err
	}
	return be.close()
}
