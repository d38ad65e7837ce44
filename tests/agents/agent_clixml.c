/* Test agent that answers like PowerShell over ssh on a bad day: a UTF-8
 * BOM, a CLIXML progress block, noise, a JSON line without "status", then
 * the real envelope with CRLF, then more noise. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    char buf[4096];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {}
    fputs("\xEF\xBB\xBF"
          "#< CLIXML\r\n",
          stdout);
    fputs("<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">"
          "<Obj S=\"progress\" RefId=\"0\"><TN RefId=\"0\"><T>System.Management.Automation.PSCustomObject</T>"
          "</TN><MS><I64 N=\"SourceId\">1</I64><PR N=\"Record\"><AV>Preparing modules for first use.</AV>"
          "</PR></MS></Obj></Objs>\r\n",
          stdout);
    fputs("\r\n", stdout);
    fputs("WARNING: something chatty\r\n", stdout);
    fputs("{\"progress\": 50}\r\n", stdout);
    fputs("{\"status\":\"success\",\"message\":\"VM 'web-01' created successfully\",\"data\":"
          "{\"vm_id\":\"0b7c8d52-5a8f-4d1e-9f3e-2a6b1c4d5e6f\",\"vm_name\":\"web-01\"},"
          "\"code\":null,\"logs\":[\"ok\"],\"correlation_id\":\"corr-clixml\"}\r\n",
          stdout);
    fputs("Goodbye from the profile script\r\n", stdout);
    return 0;
}
