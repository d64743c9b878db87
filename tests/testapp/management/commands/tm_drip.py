import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Write --lines numbered lines, one every --tick seconds, half of them warnings."

    def add_arguments(self, parser):
        parser.add_argument("--lines", type=int, default=10)
        parser.add_argument("--tick", type=float, default=0.3)
        parser.add_argument(
            "--hostile", action="store_true", help="make line 3 an HTML/script injection attempt"
        )

    def handle(self, *args, **options):
        for n in range(1, options["lines"] + 1):
            text = "drip %d" % n
            if n == 3 and options["hostile"]:
                text += ' <img src=x onerror="window.tmInjected=1"><script>window.tmInjected=2</script> http://example.com/x'
            self.stdout.write(self.style.WARNING(text) if n % 2 == 0 else text)
            time.sleep(options["tick"])
