"""Product search: lexical BM25, dense ANN, hybrid fusion, filters, facets and personalisation."""
