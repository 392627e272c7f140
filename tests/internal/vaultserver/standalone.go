package vaultserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
)

// Programs (the benchmark driver) have no testing.T: Standalone runs StartCluster with a
// testing.TB stand-in whose Fatal ends the start with an error instead of a test failure.

// errFatal is the panic value of standaloneTB.Fatal*, recovered by StartStandalone.
var errFatal = errors.New("vaultserver: fatal")

// standaloneTB implements what this package uses of testing.TB. The embedded interface is
// nil: any other method panics, which only a change to this package could reach.
type standaloneTB struct {
	testing.TB
	log      io.Writer
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	dirs     []string
	msg      string
}

func (t *standaloneTB) Helper() {}

func (t *standaloneTB) Logf(format string, args ...any) {
	fmt.Fprintf(t.log, format+"\n", args...)
}

func (t *standaloneTB) Errorf(format string, args ...any) {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	t.Logf(format, args...)
}

func (t *standaloneTB) Fatalf(format string, args ...any) {
	t.mu.Lock()
	t.failed = true
	t.msg = fmt.Sprintf(format, args...)
	t.mu.Unlock()
	panic(errFatal)
}

func (t *standaloneTB) Fatal(args ...any) { t.Fatalf("%s", fmt.Sprint(args...)) }

func (t *standaloneTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *standaloneTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *standaloneTB) TempDir() string {
	dir, err := os.MkdirTemp("", "vaultserver-")
	if err != nil {
		t.Fatalf("vaultserver: temp dir: %v", err)
	}
	t.mu.Lock()
	t.dirs = append(t.dirs, dir)
	t.mu.Unlock()
	return dir
}

// stop runs the cleanups in reverse order (servers stopped by pid), then removes the
// temporary directories.
func (t *standaloneTB) stop() {
	t.mu.Lock()
	cleanups, dirs := t.cleanups, t.dirs
	t.cleanups, t.dirs = nil, nil
	t.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		func() {
			defer func() { _ = recover() }() // a Fatal in a cleanup must not skip the others
			cleanups[i]()
		}()
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

// StartStandalone is StartCluster for a program: it returns the cluster and a stop function
// (stops every server it started, by pid, and removes its directories), or an error after
// stopping whatever had started. Progress lines go to log.
func StartStandalone(ctx context.Context, opts Options, n int, log io.Writer) (c *Cluster, stop func(), err error) {
	if log == nil {
		log = io.Discard
	}
	t := &standaloneTB{log: log}
	defer func() {
		if r := recover(); r != nil {
			t.stop()
			if r != errFatal {
				panic(r)
			}
			c, stop, err = nil, nil, errors.New(t.msg)
		}
	}()
	c = StartCluster(t, ctx, opts, n)
	return c, t.stop, nil
}
