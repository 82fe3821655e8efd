package keyset

import "github.com/iterjob/iterjob/enumerators"

// Queries returns the page queries of an enumerator built by Rows, for tests
// that EXPLAIN them.
func Queries[T any](e enumerators.Enumerator[T, Cursor]) (first, next string) {
	switch v := e.(type) {
	case *rowsEnum[T]:
		return v.k.firstSQL, v.k.nextSQL
	case *rowsCounted[T]:
		return v.k.firstSQL, v.k.nextSQL
	}
	panic("keyset: not an enumerator of Rows")
}
