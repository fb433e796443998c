"""One module per chapter of the book: each turns the cached steps of :mod:`mifgsm_lib.pipeline` and the concept
modules into the tables, decisions and figure data its chapter shows. Studies never import each other."""
