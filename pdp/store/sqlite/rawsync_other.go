//go:build !linux

package sqlite

import "modernc.org/libc"

// rawSync does nothing off Linux: SQLite's own xSync syncs (see rawsync.go).
func rawSync(tls *libc.TLS, r uintptr) (rc int32, ok bool) { return 0, false }
