# expect: FORM
FROM scratch
FORM scratch
