"""Front-ends for Numba users, generated from the mappings' row functions: NumPy
generalized ufuncs (:mod:`.gufuncs`) and overloads that make the public functions callable
inside ``@numba.njit`` code (:mod:`.overloads`)."""
