package connio

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// optNames names the options errors mention.
var optNames = map[[2]int]string{
	{unix.SOL_SOCKET, unix.SO_KEEPALIVE}:       "SO_KEEPALIVE",
	{unix.SOL_SOCKET, unix.SO_RCVBUF}:          "SO_RCVBUF",
	{unix.SOL_SOCKET, unix.SO_SNDBUF}:          "SO_SNDBUF",
	{unix.SOL_SOCKET, unix.SO_LINGER}:          "SO_LINGER",
	{unix.SOL_SOCKET, unix.SO_REUSEADDR}:       "SO_REUSEADDR",
	{unix.SOL_SOCKET, unix.SO_REUSEPORT}:       "SO_REUSEPORT",
	{unix.SOL_SOCKET, unix.SO_BROADCAST}:       "SO_BROADCAST",
	{unix.SOL_SOCKET, unix.SO_PRIORITY}:        "SO_PRIORITY",
	{unix.SOL_SOCKET, unix.SO_MARK}:            "SO_MARK",
	{unix.IPPROTO_TCP, unix.TCP_NODELAY}:       "TCP_NODELAY",
	{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE}:      "TCP_KEEPIDLE",
	{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL}:     "TCP_KEEPINTVL",
	{unix.IPPROTO_TCP, unix.TCP_KEEPCNT}:       "TCP_KEEPCNT",
	{unix.IPPROTO_TCP, unix.TCP_CORK}:          "TCP_CORK",
	{unix.IPPROTO_TCP, unix.TCP_QUICKACK}:      "TCP_QUICKACK",
	{unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT}:  "TCP_USER_TIMEOUT",
	{unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT}: "TCP_NOTSENT_LOWAT",
	{unix.IPPROTO_IP, unix.IP_TOS}:             "IP_TOS",
	{unix.IPPROTO_IP, unix.IP_TTL}:             "IP_TTL",
	{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY}:      "IPV6_V6ONLY",
}

// optName names level/name for an error message.
func optName(level, name int) string {
	if s, ok := optNames[[2]int{level, name}]; ok {
		return s
	}
	return fmt.Sprintf("level %d option %d", level, name)
}

// SetReadBuffer sets SO_RCVBUF.
func SetReadBuffer(fd, n int) error { return SetInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n) }

// SetWriteBuffer sets SO_SNDBUF.
func SetWriteBuffer(fd, n int) error { return SetInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n) }

// SetInt sets the integer option level/name of fd to v; the error names
// the option.
func SetInt(fd, level, name, v int) error {
	if err := unix.SetsockoptInt(fd, level, name, v); err != nil {
		return fmt.Errorf("conn: setsockopt %s = %d: %w", optName(level, name), v, err)
	}
	return nil
}

// GetInt returns the integer option level/name of fd; the error names the
// option.
func GetInt(fd, level, name int) (int, error) {
	v, err := unix.GetsockoptInt(fd, level, name)
	if err != nil {
		return 0, fmt.Errorf("conn: getsockopt %s: %w", optName(level, name), err)
	}
	return v, nil
}

// SetNoDelay sets TCP_NODELAY to noDelay.
func SetNoDelay(fd int, noDelay bool) error {
	v := 0
	if noDelay {
		v = 1
	}
	return SetInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, v)
}

// keepAliveSecs turns a keep-alive time into the seconds the kernel takes:
// 0 is net's default of 15 s, negative means leave it (-1), and the rest
// rounds up, at most 32767 (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL).
func keepAliveSecs(what string, d time.Duration) (int, error) {
	switch {
	case d == 0:
		return 15, nil
	case d < 0:
		return -1, nil
	}
	secs := (d + time.Second - 1) / time.Second
	if secs > 32767 {
		return 0, fmt.Errorf("conn: keep-alive %s %v above 32767 s", what, d)
	}
	return int(secs), nil
}

// SetKeepAlive applies cfg as conn.Conn.SetKeepAlive documents.
func SetKeepAlive(fd int, cfg net.KeepAliveConfig) error {
	if !cfg.Enable {
		return SetInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 0)
	}
	idle, err := keepAliveSecs("idle", cfg.Idle)
	if err != nil {
		return err
	}
	intvl, err := keepAliveSecs("interval", cfg.Interval)
	if err != nil {
		return err
	}
	count := cfg.Count
	if count == 0 {
		count = 9
	}
	if count > 127 { // MAX_TCP_KEEPCNT
		return fmt.Errorf("conn: keep-alive count %d above 127", count)
	}
	if err := SetInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1); err != nil {
		return err
	}
	if idle > 0 {
		if err := SetInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, idle); err != nil {
			return err
		}
	}
	if intvl > 0 {
		if err := SetInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, intvl); err != nil {
			return err
		}
	}
	if count > 0 {
		if err := SetInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, count); err != nil {
			return err
		}
	}
	return nil
}

// SetLinger applies d as conn.Conn.SetLinger documents.
func SetLinger(fd int, d time.Duration) error {
	l := unix.Linger{}
	if d >= 0 {
		l.Onoff, l.Linger = 1, int32(min(d/time.Second, 1<<31-1))
	}
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &l); err != nil {
		return fmt.Errorf("conn: setsockopt SO_LINGER: %w", err)
	}
	return nil
}
