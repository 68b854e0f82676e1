#!/bin/sh
# A compile load: gcc builds a small C program 40 times (a fork/exec of cc1, as and ld each).
d=$(mktemp -d)
printf '#include <stdio.h>\nint main(void){for(int i=0;i<10;i++)printf("%%d\\n",i);return 0;}\n' > $d/a.c
for i in $(seq 40); do gcc -O2 -o $d/a$i $d/a.c; done
rm -rf $d
