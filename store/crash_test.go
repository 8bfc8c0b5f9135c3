package store

func crashChildMain() bool { return false }
