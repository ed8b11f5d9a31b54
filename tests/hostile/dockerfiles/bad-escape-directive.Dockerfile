# escape=x
# expect: escape
FROM scratch
