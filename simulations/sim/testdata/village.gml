graph [
  node [ id 1 label "gw" graphics [ x 0.0 y 0.0 ] ]
  node [ id 2 label "v1" graphics [ x 50 y 20.5 ] ]
  node [ id 3 label "v2" graphics [ x -40 y 45 ] ]
  node [ id 4 label "v3" graphics [ x 30 y -60 ] ]
]
