package enumerators

// KeysetQueries returns the page queries of an enumerator built by Keyset,
// for tests that EXPLAIN them.
func KeysetQueries[T any](e Enumerator[T, KeysetCursor]) (first, next string) {
	switch v := e.(type) {
	case *keysetRows[T]:
		return v.k.firstSQL, v.k.nextSQL
	case *keysetRowsCounted[T]:
		return v.k.firstSQL, v.k.nextSQL
	}
	panic("enumerators: not a keyset enumerator")
}
