//go:build !linux

package sqlite

import "os"

// writeBack makes f's data durable (fsync: no sync_file_range off Linux);
// see dbsync_linux.go.
func writeBack(f *os.File) error { return f.Sync() }
