package rpcapi

import (
	"errors"
	"fmt"
	"testing"
)

// A node's disk-full refusal reaches the client as CodeDiskFull with its
// message, and errors.Is matches it on the client side.
func TestDiskFullCode(t *testing.T) {
	e, unexpected := errorFor(fmt.Errorf("%w: 8 MiB free", ErrDiskFull))
	if unexpected || e.Code != CodeDiskFull || e.Message != "disk full: 8 MiB free" {
		t.Fatalf("got %+v (unexpected %v)", e, unexpected)
	}
	if !errors.Is(e, ErrDiskFull) || errors.Is(e, ErrRefused) {
		t.Errorf("errors.Is on the client's error: %v", e)
	}
}
