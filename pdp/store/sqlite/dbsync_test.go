package sqlite

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteBack: writeBack covers a file of several pieces (and a last
// partial one) without error and leaves its content as written; on a
// closed file it fails instead of reporting a write-back it did not do.
func TestWriteBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	data := bytes.Repeat([]byte("gatehouse"), (2*writeBackChunk+12345)/9)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("dirty"), int64(len(data))-5); err != nil {
		t.Fatal(err)
	}
	if err := writeBack(f); err != nil {
		t.Fatalf("writeBack: %v", err)
	}
	f.Close()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := append(data[:len(data)-5:len(data)-5], "dirty"...)
	if !bytes.Equal(got, want) {
		t.Error("the file's content changed")
	}
	if err := writeBack(f); err == nil {
		t.Error("writeBack of a closed file succeeded")
	}
}
