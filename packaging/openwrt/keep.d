/etc/meshd/
