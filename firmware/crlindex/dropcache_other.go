//go:build !linux

package crlindex

import "errors"

// DropCaches is unsupported outside Linux.
func (x *Index) DropCaches(path string) error { return errors.ErrUnsupported }
