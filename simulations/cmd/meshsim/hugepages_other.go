//go:build !linux

package main

// startHugePages does nothing where huge pages are not asked for by
// madvise (see hugepages_linux.go).
func startHugePages() (stop func()) { return func() {} }
