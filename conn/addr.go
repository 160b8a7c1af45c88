package conn

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ErrInvalidAddr is wrapped by ParseAddr (and so by the loop's StartServer,
// Connect and OpenDatagram) for an address it cannot use.
var ErrInvalidAddr = errors.New("conn: invalid address")

// maxUnixPath is sizeof(sockaddr_un.sun_path) minus the terminating NUL.
const maxUnixPath = 107

// ParseAddr splits an address as the loop accepts it into a network and an
// address:
//
//	"unix:/path/to/sock"  → ("unix", "/path/to/sock")
//	"unix:@name"          → ("unix", "@name"), an abstract socket: the '@'
//	                        becomes the leading NUL of the socket address
//	"host:port"           → ("tcp", "host:port"), host an IPv4 or IPv6
//	                        literal (IPv6 in brackets), a host name, or empty
//	                        (every local address); port 0 to 65535
//
// Errors wrap ErrInvalidAddr. It does no name resolution.
func ParseAddr(s string) (network, address string, err error) {
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		switch {
		case rest == "" || rest == "@":
			return "", "", fmt.Errorf("%w: %q: empty unix socket name", ErrInvalidAddr, s)
		case len(rest) > maxUnixPath:
			return "", "", fmt.Errorf("%w: %q: unix socket name longer than %d bytes", ErrInvalidAddr, s, maxUnixPath)
		case strings.IndexByte(rest, 0) >= 0:
			return "", "", fmt.Errorf("%w: %q: NUL in unix socket name", ErrInvalidAddr, s)
		}
		return "unix", rest, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalidAddr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil || port[0] == '+' {
		return "", "", fmt.Errorf("%w: %q: port must be a number from 0 to 65535", ErrInvalidAddr, s)
	}
	if strings.ContainsAny(host, " \t\r\n\x00/[]") {
		return "", "", fmt.Errorf("%w: %q: bad host", ErrInvalidAddr, s)
	}
	return "tcp", s, nil
}
