package radio

// fadeMaxDB is the largest gain per-frame fading can add to a link.
func (m *Medium) fadeMaxDB() float64 { return 0 }
