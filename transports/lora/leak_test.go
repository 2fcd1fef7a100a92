package lora

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: a
// driver, link or transport that was closed must stop all of its own.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
