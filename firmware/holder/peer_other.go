//go:build !linux

package holder

import (
	"errors"
	"net"
	"os"
)

// peerUID is not implemented outside Linux: every peer is refused.
func peerUID(*net.UnixConn) (uint32, error) {
	return 0, errors.New("holder: peer credentials are only checked on Linux")
}

func renameNoReplace(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
