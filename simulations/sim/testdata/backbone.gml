# A small backbone in the style of the Internet Topology Zoo: extra keys
# (Creator, Network, Longitude, LinkLabel) are read and ignored.
Creator "meshsim test"
graph [
  directed 0
  Network "Test backbone"
  node [ id 0 label "Amsterdam" Longitude 4.9 Latitude 52.4 ]
  node [ id 1 label "Brussels" ]
  node [ id 2 label "Cologne" ]
  node [ id 3 label "Dortmund" ]
  node [ id 4 label "Essen" ]
  node [ id 5 ]
  edge [ source 0 target 1 LinkLabel "10G" ]
  edge [ source 1 target 2 ]
  edge [ source 2 target 3 ]
  edge [ source 3 target 4 ]
  edge [ source 4 target 0 ]
  edge [ source 2 target 5 ]
]
