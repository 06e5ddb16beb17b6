module polysync.test/gohost

go 1.26
