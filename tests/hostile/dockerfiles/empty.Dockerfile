# expect: must start with FROM
