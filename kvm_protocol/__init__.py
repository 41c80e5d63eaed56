"""Wire formats shared by the controller, the server and the simulator."""
