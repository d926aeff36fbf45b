package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPercentileMs(t *testing.T) {
	ms := func(n int) []time.Duration {
		d := make([]time.Duration, n)
		for i := range d {
			d[i] = time.Duration(i+1) * time.Millisecond
		}
		return d
	}
	for _, c := range []struct {
		n    int
		p    float64
		want float64
	}{
		{0, 0.99, 0},
		{1, 0.99, 1},
		{100, 0.50, 50},
		{100, 0.99, 99},
		{1000, 0.99, 990},
		{1000, 0.999, 999},
		{1001, 0.999, 1000},
	} {
		if got := percentileMs(ms(c.n), c.p); got != c.want {
			t.Errorf("percentileMs(1..%d ms, %v) = %v, want %v", c.n, c.p, got, c.want)
		}
	}
}

func TestWriteLatencyLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "gatehouse.2.tsv")
	lat := [][]sample{
		{{0, 3 * time.Millisecond}, {3*time.Millisecond + 40*time.Microsecond, 11 * time.Millisecond}},
		{},
		{{1500 * time.Microsecond, 2500 * time.Microsecond}},
	}
	if err := writeLatencyLog(path, lat); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "client\tstart_us\tlatency_us\n0\t0\t3000\n0\t3040\t11000\n2\t1500\t2500\n"
	if got := string(b); got != want {
		t.Errorf("latency log:\n%s\nwant:\n%s", got, want)
	}
	if err := writeLatencyLog(filepath.Join(path, "under-a-file.tsv"), lat); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a log under a file: err = %v, want not a directory", err)
	}
}
