/* Unit tests of the broker URL list (common/core/urllist.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "urllist.h"

Test(urllist, splits_on_any_whitespace)
{
    HvdUrlList l;
    char why[64] = "";
    cr_assert(hvd_url_list_split("  amqp://a/%2f\tamqp://b:1/x \n amqps://c/ ", &l, why, sizeof why));
    cr_assert_eq(l.n, 3);
    cr_assert_str_eq(l.v[0], "amqp://a/%2f");
    cr_assert_str_eq(l.v[1], "amqp://b:1/x");
    cr_assert_str_eq(l.v[2], "amqps://c/");
    hvd_url_list_free(&l);
    cr_assert_eq(l.n, 0);
    cr_assert(hvd_url_list_split("amqp://only", &l, why, sizeof why));
    cr_assert_eq(l.n, 1);
    hvd_url_list_free(&l);
}

Test(urllist, empty_and_too_many)
{
    HvdUrlList l;
    char why[64] = "";
    cr_assert_not(hvd_url_list_split(" \n\t", &l, why, sizeof why));
    cr_assert_str_eq(why, "no URL");
    cr_assert_not(hvd_url_list_split(NULL, &l, why, sizeof why));
    char many[2048] = "";
    for (int i = 0; i < HVD_URL_LIST_MAX + 1; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "amqp://n%d/ ", i);
    cr_assert_not(hvd_url_list_split(many, &l, why, sizeof why));
    cr_assert_str_eq(why, "more than 16 URLs");
    cr_assert_eq(l.n, 0);
    hvd_url_list_free(NULL);
}

Test(urllist, comma_in_the_host_part_only)
{
    cr_assert(hvd_url_host_has_comma("amqp://a,b/%2f"));
    cr_assert(hvd_url_host_has_comma("amqp://u:p@a:5672,b:5672/%2f"));
    cr_assert(hvd_url_host_has_comma("amqp://a:5672,amqp://b:5672/%2f"));
    cr_assert(hvd_url_host_has_comma("amqp://a,b"));
    cr_assert_not(hvd_url_host_has_comma("amqp://u:p,w@a/%2f"));
    cr_assert_not(hvd_url_host_has_comma("amqp://a/v,host"));
    cr_assert_not(hvd_url_host_has_comma("amqp://a/?x=1,2"));
    cr_assert_not(hvd_url_host_has_comma("amqp://a:5672"));
    cr_assert_not(hvd_url_host_has_comma(NULL));
}
