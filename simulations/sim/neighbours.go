package sim

// radioNeighboursMean is the mean number of radio neighbours per radio
// node: the nodes that receive its frames at or above the threshold, on
// its channel (the links of the radio graph, shadowing included). It tells
// a reader whether a scenario's density is realistic: community LoRa
// meshes report about 8 to 15; a flood in a much denser graph saturates
// the channel, in a much sparser one it does not get through.
func (s *Sim) radioNeighboursMean() float64 {
	if s.medium == nil || len(s.radioOf) == 0 {
		return 0
	}
	links := 0
	for _, n := range s.radioOf {
		nb, err := s.medium.Neighbours(n.radioID, s.paramsOf(n))
		if err != nil {
			continue
		}
		for _, r := range nb {
			if s.sameChannel(n, s.radioOf[r]) {
				links++
			}
		}
	}
	return round(float64(links)/float64(len(s.radioOf)), 2)
}
