package store

// The store's tests use small log segments, so that rotation and
// checkpoints happen within a few hundred batches.
func init() { walSegSize = 2 << 20 }
