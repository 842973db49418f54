"""The words of the join form's consent, version 1, as shown since the public pages
began: joins recorded before consent texts were stored point at them."""

from django.db import migrations

TEXTS = {
    "en": (
        "I agree to join this campaign and that my email address and name are used to "
        "run it and to tell me about my rewards."
    ),
    "zh-hans": "我同意参加本活动，并同意为开展活动和通知我奖励情况而使用我的电子邮箱和名字。",
}


def forwards(apps, schema_editor):
    ConsentText = apps.get_model("trust", "ConsentText")
    for language, text in TEXTS.items():
        ConsentText.objects.get_or_create(version="1", language=language, defaults={"text": text})


class Migration(migrations.Migration):
    dependencies = [("trust", "0001_initial")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
