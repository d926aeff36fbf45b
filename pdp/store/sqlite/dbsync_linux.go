package sqlite

import (
	"os"
	"runtime"
	"syscall"
)

// writeBackChunk is how much of the file one sync_file_range(2) covers:
// a goroutine in a system call keeps its processor until the runtime's
// monitor takes it back (up to ~10 ms), so the write-back is issued in
// pieces short enough to keep that small, yielding between them.
const writeBackChunk = 4 << 20

// writeBack writes f's dirty pages to the device and waits for them,
// piece by piece (sync_file_range WAIT_BEFORE|WRITE|WAIT_AFTER). It does
// not flush the device's cache or the file's metadata: durability stays
// with the fdatasync SQLite makes before the WAL may restart; this only
// leaves that fdatasync less to write.
func writeBack(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	const flags = 1 | 2 | 4 // SYNC_FILE_RANGE_WAIT_BEFORE | _WRITE | _WAIT_AFTER
	fd := f.Fd()
	for off := int64(0); off < st.Size(); off += writeBackChunk {
		for {
			_, _, errno := syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, fd, uintptr(off), writeBackChunk, flags, 0, 0)
			if errno == syscall.EINTR {
				continue
			}
			if errno != 0 {
				return errno
			}
			break
		}
		runtime.Gosched()
	}
	return nil
}
