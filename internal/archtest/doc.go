// Package archtest holds the tests that guard meshd's architecture, so that a
// wrong dependency fails CI instead of creeping in. It has no code of its own;
// everything is in archtest_test.go.
//
// The tests read `go list -deps -json ./...` from the module root and check:
//
//   - the import rules between the top-level folders (docs/architecture.md,
//     section 2), on both direct imports and transitive dependencies, and
//     report the offending import chain;
//   - that the pure core (protocol, routing, fapp) imports nothing that does
//     I/O, reads the wall clock or draws from a global random source, and
//     depends on none of the networking, storage or serial libraries
//     (docs/architecture.md, section 3);
//   - at source level, that the pure core's non-test files start no
//     goroutines, call no wall-clock or sleeping functions of package time
//     (however it is imported), and use package math/rand/v2 only through an
//     injected *rand.Rand;
//   - that every package has a doc comment (docs/architecture.md, section 7).
//
// Every checker is a function from input (a package list or a source file) to
// a list of violations, and is tested on synthetic bad input, so a checker
// that silently stopped reporting anything would itself fail.
//
// When a new top-level folder is added, give it a rule in the rules table of
// archtest_test.go (and a row in docs/architecture.md); until then its packages
// are reported as violations.
package archtest
