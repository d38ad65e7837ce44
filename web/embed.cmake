# Writes OUT, a C file defining `const unsigned char NAME[]` (the bytes of IN
# and a NUL) and `const unsigned long NAME_len`. Run as:
#   cmake -DIN=file -DOUT=file.c -DNAME=symbol -P web/embed.cmake
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(LENGTH "${hex}" n)
math(EXPR n "${n} / 2")
file(WRITE "${OUT}" "/* generated from ${IN} by web/embed.cmake */\nconst unsigned char ${NAME}[] = {${bytes}0x00};\nconst unsigned long ${NAME}_len = ${n};\n")
